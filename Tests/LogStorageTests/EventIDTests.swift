import LogStorage
import Testing

@Suite struct EventIDTests {
    /// An id names one (origin, offset): `origin-LOGID-offset`, a log id
    /// without a dash, the offset in decimal (zero-padded as written).
    @Test func anIDSpellsItsOriginAndOffsetAndNothingElse() {
        let written = EventID.make(prefix: "api-1-f00d-", offset: 42)
        #expect(EventID.spells(written, origin: "api-1", offset: 42))
        #expect(EventID.spells("api-1-f00d-000000000007", origin: "api-1", offset: 7))
        #expect(!EventID.spells(written, origin: "api-1", offset: 41), "another offset")
        #expect(!EventID.spells(written, origin: "api-2", offset: 42), "another origin")
        #expect(!EventID.spells(written, origin: "api", offset: 42), "the origin must end at a dash before the log id")
        #expect(!EventID.spells("api-1-f0-0d-42", origin: "api-1", offset: 42), "a log id with a dash")
        #expect(!EventID.spells("api-1--42", origin: "api-1", offset: 42), "no log id")
        #expect(!EventID.spells("api-1-f00d-", origin: "api-1", offset: 0), "no offset")
        #expect(!EventID.spells("api-1-f00d-4x2", origin: "api-1", offset: 42), "not decimal")
        #expect(!EventID.spells("api-1-f00d-+42", origin: "api-1", offset: 42), "a sign")
        #expect(!EventID.spells("api-1-f00d-99999999999999999999999", origin: "api-1", offset: 42), "an offset beyond Int64")
        #expect(!EventID.spells("api-1", origin: "api-1", offset: 1))
        #expect(!EventID.spells("", origin: "api-1", offset: 1))
    }
}
