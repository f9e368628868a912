"""The campaign's read side, one module per audience, every figure from the rollups that the
ledger keeps in the same transaction (market.campaign.rollups), so they are exact:

- `dashboard`: the organizer's dashboard (units, villages, towns, categories, weekly trend, totals);
- `laggards`: the units behind their pro-rated target (the reminder list);
- `unit_progress`: a unit's own page (rank, members' participation, referral link);
- `coop_sales`: a co-op's own sales by product and unit;
- `public`: what everyone may see;
- `ledger_lines`: the ledger detail the exports write;
- `filters`: what they share: the filters, the slices of rollups and entries they read, the
  campaign chooser and the counters.

Days are Shanghai calendar days (market.clock), inclusive.
"""
