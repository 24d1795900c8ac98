"""Who may call the gateway: the key ring (config and runtime keys) and its stores."""
