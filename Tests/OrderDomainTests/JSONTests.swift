import OrderDomain
import Testing

@Suite struct JSONTests {
    @Test func parsesEveryKindOfValue() throws {
        let parsed = try JSONValue.parse(#" {"a" : [1, -2, 0, true, false, null, "\u00e9\ud83d\ude00\"\\\/\b\f\n\r\t", {}, []], "b": -0.5e2} "#)
        #expect(parsed == .object([
            ("a", .array([.integer(1), .integer(-2), .integer(0), .bool(true), .bool(false), .null,
                          .string("é😀\"\\/\u{8}\u{C}\n\r\t"), .object([]), .array([])])),
            ("b", .double(-50)),
        ]))
        #expect(parsed["b"] == .double(-50))
        #expect(parsed["missing"] == nil)
        #expect(JSONValue.integer(1)["a"] == nil)
    }

    @Test(arguments: [
        ("0", JSONValue.integer(0)), ("-0", .integer(0)), ("9223372036854775807", .integer(.max)),
        ("-9223372036854775808", .integer(.min)), ("1.5", .double(1.5)), ("1E3", .double(1000)), ("2e-2", .double(0.02)),
        ("1e+2", .double(100)), ("99999999999999999999", .double(1e20)), ("-0.0", .double(-0.0)),
    ])
    func numbersFollowTheGrammar(text: String, value: JSONValue) throws {
        #expect(try JSONValue.parse(text) == value)
    }

    @Test(arguments: [
        // Truncated.
        "", " ", "{", "[", "[1", "[1,", #"{"a""#, #"{"a":"#, #"{"a":1"#, #""abc"#, "tru", "nul", "-", "1.", "1e", "1e+", #""\u12"#, #""\"#,
        // Trailing garbage.
        "1 2", "{} x", "[]]", "null,", #""a""b""#,
        // Not JSON.
        "{1:2}", #"{"a":}"#, "[1,]", #"{"a":1,}"#, "[,1]", "01", "-01", "+1", ".5", "1.e5", "0x10", "NaN", "Infinity", "True", "'a'",
        #"{"a" 1}"#, #"{"a":1 "b":2}"#, #"{"a":1,"a":2}"#,
        // Strings.
        "\"a\u{1}b\"", "\"tab\tin\"", #""\x""#, #""\uZZZZ""#, #""\ud800""#, #""\ud800x""#, #""\ud800\u0041""#, #""\udc00""#,
    ])
    func malformedTextIsRefused(text: String) {
        #expect(throws: EventDecodingError.self, "\(text)") { try JSONValue.parse(text) }
    }

    @Test func everyPrefixOfADocumentIsRefused() throws {
        let document = #"{"v":1,"lines":[{"sku":"S\"\u00e9","qty":2}],"x":-1.5e3,"n":null,"t":true}"#
        _ = try JSONValue.parse(document)
        for length in 0..<document.utf8.count {
            let prefix = String(decoding: document.utf8.prefix(length), as: UTF8.self)
            #expect(throws: EventDecodingError.self, "prefix \(length)") { try JSONValue.parse(prefix) }
        }
    }

    @Test func nestingIsLimited() throws {
        let atLimit = String(repeating: "[", count: JSONValue.depthMax) + String(repeating: "]", count: JSONValue.depthMax)
        _ = try JSONValue.parse(atLimit)
        let beyond = "[" + atLimit + "]"
        #expect(throws: EventDecodingError.self) { try JSONValue.parse(beyond) }
        // Far beyond: refused without exhausting the stack.
        let hostile = String(repeating: #"{"a":["#, count: 100_000)
        #expect(throws: EventDecodingError.self) { try JSONValue.parse(hostile) }
    }

    @Test func sizeIsLimited() {
        let huge = "\"" + String(repeating: "a", count: JSONValue.textBytesMax) + "\""
        #expect(throws: EventDecodingError.self) { try JSONValue.parse(huge) }
    }

    @Test func errorsSayWhere() {
        do {
            _ = try JSONValue.parse("[1, x]")
            Issue.record("expected an error")
        } catch {
            #expect(error.message == "invalid JSON at byte 4: unexpected character")
        }
    }

    @Test func serializedTextIsCompactAndEscaped() {
        let value = JSONValue.object([
            ("s", .string("\"\\\n\u{1}é")), ("i", .integer(-3)), ("d", .double(0.25)), ("inf", .double(.infinity)),
            ("a", .array([.null, .bool(true)])), ("o", .object([])),
        ])
        #expect(value.serialized() == #"{"s":"\"\\\n\u0001é","i":-3,"d":0.25,"inf":null,"a":[null,true],"o":{}}"#)
    }

    @Test func integersAndEveryEscapeAreWrittenAsJSONSays() throws {
        let value = JSONValue.array([
            .integer(0), .integer(7), .integer(-10), .integer(Int64.max), .integer(Int64.min),
            .string("\t\r\u{7F}\u{1F}\u{0}/é中😀"), .string(""),
        ])
        let text = #"[0,7,-10,9223372036854775807,-9223372036854775808,"\t\r\u007f\u001f\u0000/é中😀",""]"#
        #expect(value.serialized() == text)
        #expect(value.serializedBytes() == Array(text.utf8))
        #expect(try JSONValue.parse(text) == value)
    }

    /// Random values, written then parsed: the parser reads back exactly
    /// what the writer wrote, whatever the strings hold.
    @Test(arguments: 0..<100)
    func writerAndParserRoundTrip(seed: UInt64) throws {
        var random = SplitMix64(seed: seed)
        let value = Self.randomValue(&random, depth: 0)
        let text = value.serialized()
        #expect(try JSONValue.parse(text) == value, "seed \(seed): \(text)")
    }

    static func randomValue(_ random: inout SplitMix64, depth: Int) -> JSONValue {
        switch random.next() % (depth < 4 ? 8 : 6) {
        case 0: return .null
        case 1: return .bool(random.next() % 2 == 0)
        case 2: return .integer(Int64(bitPattern: random.next()))
        case 3: return .double(Double(Int64(bitPattern: random.next() % 2_000_001) - 1_000_000) / 64)
        case 4, 5: return .string(randomString(&random))
        case 6: return .array((0..<random.next() % 4).map { _ in randomValue(&random, depth: depth + 1) })
        default:
            // Distinct keys: duplicates are refused by the parser.
            return .object((0..<random.next() % 4).map { index in ("\(index)" + randomString(&random), randomValue(&random, depth: depth + 1)) })
        }
    }

    static func randomString(_ random: inout SplitMix64) -> String {
        let pool: [Unicode.Scalar] = ["a", "Z", "0", " ", "\"", "\\", "/", "\n", "\t", "\u{0}", "\u{1F}", "\u{7F}", "é", "中", "😀", "\u{2028}", "\u{FFFF}"]
        var text = String.UnicodeScalarView()
        for _ in 0..<random.next() % 12 { text.append(pool[Int(random.next() % UInt64(pool.count))]) }
        return String(text)
    }
}
