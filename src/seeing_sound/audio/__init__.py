"""Pure signal code: decoding, standardization, chunking, BS.1770 loudness, mixing. No torch."""
