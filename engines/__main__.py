"""``python -m engines build|verify|list|bench`` (what ``make engines`` runs)."""

from engines.cli import main

raise SystemExit(main())
