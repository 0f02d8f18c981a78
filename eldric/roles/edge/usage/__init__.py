"""Usage, spend and budgets per client (issue 19): the edge's room for them.

- record.py: what one reply used (Tokens) and the row counted for it (Record);
- budgets.py: reserve before a request, settle after (tpm, tokens per day, cost per
  day / month, allowed models), in process or in the farm's Redis;
- the meter (taps on the reply, never a re-parse of the whole body), the price table,
  the batched store and the usage API live beside them.

The handlers call one narrow face; with usage off the request path is today's.
"""
