"""Explaining a run of the machine: what each step did and why each token is what it is.

- ``steps``: the VM steps of a run decoded from its tokens alone (the prompt
  holds the program, the generated tokens the state changes), one row each;
- ``heads``: one token's forward pass with every head's winning position,
  and what the head is for (the compiler's metadata in config.json);
- ``roles``: every head and FFN group of a model with its role, and the
  weight matrices' sparsity as a PNG (``wasmformer inspect --heads/--plot``);
- ``render``: the terminal tables and the JSON;
- ``html``: the one self-contained HTML page of ``explain --html``;
- ``command``: the ``wasmformer explain`` command behind the CLI's thin handler.

docs/inspect.md describes the commands with a worked example.
"""
