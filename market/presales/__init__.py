"""预售: harvest-window presales of a co-op's SKU, paid through ordinary orders."""
