"""Fault scenarios against a whole OMS stack the harness starts itself (`make chaos`,
issue 8 point 6): worker SIGKILL, dev server SIGTERM / SIGKILL, the store's database
blocked, a location webhook failing and refusing, each under bounded load; then the
promises are checked. `python -m tests.chaos.faults --help`."""
