"""`eldric chat`: a terminal chat on any OpenAI-compatible /v1/chat/completions.

command.py (the click command: one-shot or interactive), reply.py (one streamed reply
and its timings), render.py (rich Markdown on a terminal, plain text otherwise),
slash.py (the /commands), conversation.py (a conversation and its JSON file).
"""
