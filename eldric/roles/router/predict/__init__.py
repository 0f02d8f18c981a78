"""Load forecasting: expected request rate per model, from the router's own counters.

holt.py is the model (Holt's damped-trend exponential smoothing, robust), forecaster.py
its series fed from the router's counters, sampling.py its timer, api.py
GET /api/v1/predict. Nothing here is imported by the package itself: config.py is read by
the router's config, which the rest import.
"""
