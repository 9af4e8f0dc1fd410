"""Who may use the app and what each role may do: accounts, login sessions, permissions.

Every check runs in the server-side action code (``energizeos.ui.actions``), whatever a page shows.
"""
