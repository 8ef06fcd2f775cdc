"""Streamlit entry point: ``streamlit run app.py`` (or ``vein-tracker serve``, ``make run``).

Thin on purpose: the sign-in gate and the role-based navigation live in
``vein_tracker.ui.shell``; the pages live in ``vein_tracker/ui/`` and are registered
with ``st.navigation`` (there is deliberately no ``pages/`` folder here).

Served through :class:`streamlit.App` so the app has its two sign-in routes
(``vein_tracker.ui.web_auth``: the HttpOnly session cookie that lets a reload or a link
keep the user signed in). ``streamlit run app.py`` finds ``app`` below and serves it;
Streamlit then runs this same file as the page script, where ``__name__`` is
``"__main__"``.
"""

import streamlit as st

if __name__ == "__main__":
    from vein_tracker.ui.shell import main

    main()
else:
    from vein_tracker.ui import web_auth

    app = st.App(__file__, routes=web_auth.routes())
