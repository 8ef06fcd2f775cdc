"""The repository's aggregates, one module each, over shared transaction and guard helpers.

``base`` (transactions, retries, the acting user's check, the role guards), ``common``
(audit rows, lookups, input checks) and ``rows`` (ORM rows to frozen records) serve the
aggregates: ``accounts``, ``clients``, ``visits``, ``photos``, ``analyses``, ``consent``,
``marketing``, ``audit`` and ``maintenance``. Each aggregate is one class over
:class:`~.base.RepositoryBase`; :class:`vein_tracker.storage.Repository` composes them.
Import the repository from :mod:`vein_tracker.storage`, not from here.
"""
