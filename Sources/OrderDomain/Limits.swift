/// Limits of the domain, in one place, named with the unit last.
public enum Limits {
    public static let linesMax = 100
    public static let qtyMax = 10_000
    public static let customerBytesMax = 128
    public static let amountCentsMax: Cents = 100_000_000_00
    public static let reasonBytesMax = 256
}
