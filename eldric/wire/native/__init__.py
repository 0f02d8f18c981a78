"""Pure translations between OpenAI's API and backends' native APIs (no I/O).

``chat_in`` reads an OpenAI chat request into one neutral Conversation every native
translator maps from; ``chat_out`` writes OpenAI's chat replies (whole, and chunk events)
every native translator maps to. One module per native API beside them.
"""
