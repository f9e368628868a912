"""Cart, checkout, orders split into one shipment per co-op, fulfilment, cancellation."""
