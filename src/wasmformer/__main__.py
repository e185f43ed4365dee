from wasmformer.cli import main

raise SystemExit(main())
