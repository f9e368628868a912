"""Background exports (issue 13, point 5): an organizer asks for a whole-ledger XLSX or CSV, a
Celery task writes it into a private file while the job's progress is stored, the page polls
the progress and offers the file when it is done (the Flask Mega-Tutorial's "background jobs"
pattern). models.py holds the job and its state machine, services.py the rules (who may start,
see and retry a job; one job per double click; stale jobs fail), kinds.py what each kind of
export writes, views.py the pages."""
