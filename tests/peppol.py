"""The official validation of Peppol BIS Billing 3.0 documents, run here: the UBL 2.1 schema (from
`com.helger.ubl:ph-ubl21`) and OpenPeppol's Schematron rules as the XSLT they ship, CEN-EN16931-UBL and
PEPPOL-EN16931-UBL (from `com.helger.phive.rules:phive-rules-peppol`), both from Maven Central, cached under
.cache/ like the Kafka jars. The XSLT is XSLT 2.0: Saxon runs it (saxonche)."""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import zipfile
from dataclasses import dataclass
from pathlib import Path

from lxml import etree

from utfall_platform.local.paths import cache_dir

PHIVE_PEPPOL = "com.helger.phive.rules:phive-rules-peppol:4.3.7"
PH_UBL = "com.helger.ubl:ph-ubl21:10.2.0"
# The schemas UBL 2.1 imports by namespace alone (ph-ubl resolves them from these jars by a catalogue)
IMPORTED = {
    "urn:un:unece:uncefact:data:specification:CoreComponentTypeSchemaModule:2": (
        "com.helger.xsd:ph-xsds-ccts-cct-schemamodule:4.1.0",
        "schemas/CCTS_CCT_SchemaModule.xsd",
    ),
    "http://www.w3.org/2000/09/xmldsig#": (
        "com.helger.xsd:ph-xsds-xmldsig:4.1.0",
        "schemas/xmldsig-core-schema.xsd",
    ),
    "http://uri.etsi.org/01903/v1.3.2#": (
        "com.helger.xsd:ph-xsds-xades132:4.1.0",
        "schemas/XAdES01903v132-201601.xsd",
    ),
    "http://uri.etsi.org/01903/v1.4.1#": (
        "com.helger.xsd:ph-xsds-xades141:4.1.0",
        "schemas/XAdES01903v141-201601.xsd",
    ),
}
RULES_RELEASE = "2025.11"  # OpenPeppol's release of the BIS Billing 3.0 rules in that jar
SVRL = "{http://purl.oclc.org/dsdl/svrl}"


def _jar(coordinates: str) -> Path:
    _, artifact, version = coordinates.split(":")
    target = cache_dir() / "peppol" / f"{artifact}-{version}.jar"
    if target.exists():
        return target
    if shutil.which("mvn") is None:
        raise RuntimeError("Maven (mvn) is needed to fetch the Peppol validation artefacts")
    target.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            "mvn",
            "-B",
            "-q",
            "org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy",
            f"-Dartifact={coordinates}",
            f"-DoutputDirectory={target.parent}",
        ],
        check=True,
    )
    return target


def _extract(jar: Path, prefix: str) -> Path:
    """The jar's files under `prefix`, unpacked once beside it."""
    folder = jar.with_suffix("")
    marker = folder / ".complete"
    if not marker.exists():
        shutil.rmtree(folder, ignore_errors=True)
        with zipfile.ZipFile(jar) as archive:
            archive.extractall(folder, [n for n in archive.namelist() if n.startswith(prefix)])
        marker.write_text("ok\n")
    return folder / prefix


def _ubl_schemas() -> Path:
    """UBL 2.1's schemas with every import given the file it names (lxml resolves imports by location only)."""
    root = _extract(_jar(PH_UBL), "external/schemas/ubl21/")
    marker = root / ".imports-located"
    if marker.exists():
        return root
    located: dict[str, Path] = {}
    for namespace, (coordinates, member) in IMPORTED.items():
        target = root / "imported" / Path(member).name
        target.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(_jar(coordinates)) as archive:
            target.write_bytes(archive.read(member))
        located[namespace] = target
    for xsd in [*root.rglob("*.xsd")]:
        text = xsd.read_text("utf-8")
        changed = text
        for namespace, target in located.items():
            location = os.path.relpath(target, xsd.parent)
            changed = re.sub(
                rf'(<xsd?:import\s+namespace\s*=\s*"{re.escape(namespace)}")\s*/>',
                rf'\1 schemaLocation="{location}"/>',
                changed,
            )
        if changed != text:
            xsd.write_text(changed, "utf-8")
    marker.write_text("ok\n")
    return root


@dataclass(frozen=True)
class Finding:
    rule: str
    flag: str  # fatal | warning
    text: str
    location: str


@dataclass(frozen=True)
class Report:
    schema_errors: list[str]
    findings: list[Finding]

    @property
    def fatal(self) -> list[Finding]:
        return [f for f in self.findings if f.flag == "fatal"]


class PeppolValidator:
    def __init__(self) -> None:
        from saxonche import PySaxonProcessor

        schemas = _ubl_schemas()
        rules = _extract(_jar(PHIVE_PEPPOL), f"external/schematron/openpeppol/{RULES_RELEASE}/xslt/")
        self.xsd = {
            "Invoice": etree.XMLSchema(etree.parse(str(schemas / "maindoc" / "UBL-Invoice-2.1.xsd"))),
            "CreditNote": etree.XMLSchema(etree.parse(str(schemas / "maindoc" / "UBL-CreditNote-2.1.xsd"))),
        }
        self.processor = PySaxonProcessor(license=False)
        compiler = self.processor.new_xslt30_processor()
        self.stylesheets = [
            compiler.compile_stylesheet(stylesheet_file=str(rules / name))
            for name in ("CEN-EN16931-UBL.xslt", "PEPPOL-EN16931-UBL.xslt")
        ]

    def validate(self, document: bytes) -> Report:
        tree = etree.fromstring(document)
        kind = etree.QName(tree).localname
        schema = self.xsd[kind]
        schema_errors = [] if schema.validate(tree) else [str(e) for e in schema.error_log]
        findings: list[Finding] = []
        node = self.processor.parse_xml(xml_text=document.decode("utf-8"))
        for stylesheet in self.stylesheets:
            svrl = etree.fromstring(stylesheet.transform_to_string(xdm_node=node).encode("utf-8"))
            for failed in svrl.iter(f"{SVRL}failed-assert"):
                text = failed.findtext(f"{SVRL}text") or ""
                findings.append(
                    Finding(
                        failed.get("id", "?"),
                        failed.get("flag", "fatal"),
                        text.strip(),
                        failed.get("location", ""),
                    )
                )
        return Report(schema_errors, findings)


@functools.cache
def validator() -> PeppolValidator:
    return PeppolValidator()
