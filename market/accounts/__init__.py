"""Users, sign-in, unit and co-op memberships, roles and the one permission decorator."""
