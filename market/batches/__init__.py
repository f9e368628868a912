"""Product batches (批次) and their public trace pages (issue 16): a co-op records what it
harvested or made, stock is received into a batch, each shipped order line names its batch, and
a parcel's QR label leads a buyer to the batch's story."""
