/// A leadership term: the right, granted by a majority of an order's
/// replicas, to decide on the orders of one preference list, until a newer
/// term is granted. Terms are ordered by number, then leader, the same in
/// every process, so any two terms compare. Every event carries the term it
/// was decided in; `none` marks events written without one (available mode,
/// or logs written before terms).
public struct Term: Sendable, Hashable, Comparable, CustomStringConvertible {
    public let number: Int64
    public let leader: String

    public init(number: Int64, leader: String) {
        self.number = number
        self.leader = leader
    }

    public static let none = Term(number: 0, leader: "")

    public static func < (lhs: Term, rhs: Term) -> Bool {
        (lhs.number, lhs.leader) < (rhs.number, rhs.leader)
    }

    public var description: String { self == .none ? "none" : "\(number)/\(leader)" }
}
