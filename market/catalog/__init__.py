"""Categories, products, SKUs, stock and images; the storefront and the co-op listing pages."""
