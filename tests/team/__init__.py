"""A team's own catalog, as a new team writes it from the docs: contracts (`billing_v1`, and
`billing_v2`, its compatible evolution), implementations (`tasks`) and a typed client (`client`).
Nothing here uses the demo catalog; `tests/e2e/test_team_catalog.py` walks the journey."""
