"""Streamlit pages of vein_tracker: the only package (with ``app.py``) that imports streamlit.

``shell`` signs users in and registers the pages for their role with ``st.navigation``.
Each page module is a script Streamlit executes; it re-checks the role first
(``session.require``), reads its widgets, calls one function of
``vein_tracker.services`` or the repository, and renders the result. Pages hold no
business logic, no SQL and no file access.
"""
