"""The ways in: the command line (``cli``), the chat page (``chat_page``), the OpenAI-style HTTP API
(``openai_api``), the MCP server (``mcp_server``), and what the web ways in share (``web``: login, same-origin and
host rules, checked uploads).

May import: anything; nothing imports it.
"""
