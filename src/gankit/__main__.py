from gankit.launch import main

raise SystemExit(main())
