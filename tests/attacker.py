"""An attacker on published tables, written apart from the suppression it tests: it knows every published
cell and every relation (a total is the sum of its parts) and solves the whole linear system with numpy.
A suppressed cell is recovered when the system fixes its value: its unit vector is in the row space of the
equations over the suppressed cells (the rank does not grow when it is added)."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np


def recovered(
    published: Mapping[Hashable, float | None], relations: Sequence[tuple[Hashable, Sequence[Hashable]]]
) -> dict[Hashable, float]:
    """Suppressed cells (value None) whose value subtraction over all relations gives, with that value."""
    unknown = sorted((cell for cell, value in published.items() if value is None), key=repr)
    index = {cell: i for i, cell in enumerate(unknown)}
    rows, constants = [], []
    for total, parts in relations:
        row = np.zeros(len(unknown))
        constant = 0.0
        for cell, sign in ((total, 1.0), *((part, -1.0) for part in parts)):
            if cell in index:
                row[index[cell]] += sign
            else:
                value = published[cell]
                assert value is not None
                constant -= sign * value
        if row.any():
            rows.append(row)
            constants.append(constant)
    if not rows:
        return {}
    matrix = np.array(rows)
    rank = np.linalg.matrix_rank(matrix)
    solution = np.linalg.lstsq(matrix, np.array(constants), rcond=None)[0]
    found = {}
    for cell, i in index.items():
        probe = np.zeros(len(unknown))
        probe[i] = 1.0
        if np.linalg.matrix_rank(np.vstack([matrix, probe])) == rank:
            found[cell] = round(float(solution[i]), 6)
    return found


def published_and_relations(cells: Sequence[Any], column: str) -> tuple[dict[Any, Any], list[Any]]:
    """The attacker's view of one measure in a release, built from the open data alone (cells as models or
    as the JSON download's dicts): each cell's published value of `column` (None when suppressed), and the
    relations any reader knows from the tables' meaning, for each source's tables."""

    def get(cell: Any, name: str) -> Any:
        return cell[name] if isinstance(cell, Mapping) else getattr(cell, name)

    published: dict[Any, Any] = {}
    for c in cells:
        key = (
            get(c, "source"),
            get(c, "table"),
            get(c, "provider_id"),
            get(c, "breakdown_value"),
            get(c, "discharge_year"),
        )
        published[key] = None if get(c, "suppressed") else get(c, column)
    relations: list[Any] = []
    for source in {k[0] for k in published}:
        mine = [k for k in published if k[0] == source]
        tables = {k[1] for k in mine}
        provider_year = [k for k in mine if k[1] == "provider_year"]
        for p in {k[2] for k in provider_year}:
            relations.append(
                ((source, "provider_all_years", p, None, None), [k for k in provider_year if k[2] == p])
            )
        for y in {k[4] for k in provider_year}:
            national = (source, "national_year", None, None, y)
            relations.append((national, [k for k in provider_year if k[4] == y]))
            for name in tables:
                if name.endswith("_year") and name not in ("provider_year", "national_year"):
                    relations.append((national, [k for k in mine if k[1] == name and k[4] == y]))
        everything = (source, "national_all_years", None, None, None)
        relations.append((everything, [k for k in mine if k[1] == "national_year"]))
        relations.append((everything, [k for k in mine if k[1] == "provider_all_years"]))
    return published, relations
