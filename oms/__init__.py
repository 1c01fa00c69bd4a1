"""What the OMS shares with those it talks to: `oms.webhooks` signs and verifies its
outgoing messages; `oms.targets` decides which hosts it may send them to; `oms.cli` is
the operators' command-line tool (`oms`), a client of the API."""
