"""以买代帮 unit purchases with approval, and 产品定制 custom products from request to order."""
