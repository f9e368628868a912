"""Co-op settlements (结算): what each co-op is owed for its parcels, statements, payouts."""
