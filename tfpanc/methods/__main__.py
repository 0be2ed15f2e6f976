"""Lists the registered methods: ``python -m tfpanc.methods``."""

from tfpanc.methods import registry


def main():
    for name in registry.names():
        method = registry.get(name)
        parts = [p for p in ("evaluate", "export") if method.has(p)]
        print(f"{name:10s} {method.description}  [train, predict{''.join(', ' + p for p in parts)}]")


if __name__ == "__main__":
    main()
