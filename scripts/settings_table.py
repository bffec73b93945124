"""Print docs/settings.md's settings table from the settings model (run after adding a field)."""

from localinfer.settings import Settings

FACTORY_DEFAULTS = {"home": "platform user data dir"}

print("| setting (env / config.toml key) | default | what it does |")
print("|---|---|---|")
for name, field in Settings.model_fields.items():
    if field.default_factory is not None:
        default = FACTORY_DEFAULTS.get(name, "(none)")
    else:
        default = "—" if field.default is None else str(field.default)
        if hasattr(field.default, "get_secret_value"):
            default = "—"
    print(f"| `LOCALINFER_{name.upper()}` / `{name}` | `{default}` | {field.description} |")
