"""``dsrepo serve``: one process serving a repository as an HTTP remote (``remote_api``) and as a
read-only web view (``web``), on starlette and uvicorn."""
