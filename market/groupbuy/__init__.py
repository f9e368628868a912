"""爱心团购: unit group-buys with a minimum, price tiers and a deadline."""
