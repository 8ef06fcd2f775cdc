"""Streamlit entry point: ``streamlit run app.py`` (or ``vein-tracker serve``).

Thin on purpose: the sign-in gate and the role-based navigation live in
``vein_tracker.ui.shell``; the pages live in ``vein_tracker/ui/`` and are registered
with ``st.navigation`` (there is deliberately no ``pages/`` folder here).
"""

from vein_tracker.ui.shell import main

main()
