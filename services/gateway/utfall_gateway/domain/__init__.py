"""The gateway's rules as pure functions: no I/O, no clock of their own."""
