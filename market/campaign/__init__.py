"""我为果农办实事: campaigns, unit targets and the attribution ledger (DESIGN.md §6)."""
