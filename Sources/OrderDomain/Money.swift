public typealias Cents = Int64

/// Saturating arithmetic for money and time. Values read back from a log are
/// not trusted to be in range, and `evolve` must never trap on them: an
/// absurd amount saturates at the bounds of `Int64` instead of overflowing.
extension Int64 {
    func addingSaturating(_ other: Int64) -> Int64 {
        let (sum, overflow) = addingReportingOverflow(other)
        guard overflow else { return sum }
        return other > 0 ? .max : .min
    }

    func subtractingSaturating(_ other: Int64) -> Int64 {
        let (difference, overflow) = subtractingReportingOverflow(other)
        guard overflow else { return difference }
        return other < 0 ? .max : .min
    }

    func multipliedSaturating(by other: Int64) -> Int64 {
        let (product, overflow) = multipliedReportingOverflow(by: other)
        guard overflow else { return product }
        return (self < 0) == (other < 0) ? .max : .min
    }
}

extension Sequence where Element == Int64 {
    func sumSaturating() -> Int64 { reduce(0) { $0.addingSaturating($1) } }
}
