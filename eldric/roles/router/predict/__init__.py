"""Load forecasting: expected request rate per model, from the router's own counters."""
