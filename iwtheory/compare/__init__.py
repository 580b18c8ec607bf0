"""The comparison layer (numpy and pandas only): one set of measurements for theory and nets."""
