/// lbd's version, printed by `lbd version` and logged at start.
public let lbdVersion = "0.1.0"
