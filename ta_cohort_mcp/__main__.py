from ta_cohort_mcp.cli import main

raise SystemExit(main())
