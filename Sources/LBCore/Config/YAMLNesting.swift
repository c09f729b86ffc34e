// How deep a YAML text nests, read before Yams composes it: Yams builds its node tree
// recursively, one stack frame pair per level, so a file of 10,000 `[` (or far fewer under a
// sanitizer) overflows the stack and kills the process, which on SIGHUP would be the running
// daemon. libyaml's event parser keeps its own explicit stack, so counting its collection events
// is safe at any depth. (Found by the config fuzzer after 6.2M executions.) The parser is set up
// as Yams sets up its own, UTF-8 declared rather than detected: with detection libyaml eats a
// leading byte-order mark, without it the mark counts as a column, so the same bytes can parse
// as a different tree (the fuzzer's second crash: 8 events here, 2,161 levels in Yams).

import CYaml

enum YAMLNesting {
    /// Collections nested deeper than this are refused; lbd's deepest valid key is 6 levels down.
    static let limit = 64

    /// Whether `text` nests collections deeper than `limit`. False also when libyaml cannot
    /// parse the text: Yams then reports that error with its line and column.
    static func exceedsLimit(_ text: String) -> Bool {
        var parser = yaml_parser_t()
        guard yaml_parser_initialize(&parser) == 1 else { return false }
        defer { yaml_parser_delete(&parser) }
        yaml_parser_set_encoding(&parser, YAML_UTF8_ENCODING)
        var bytes = Array(text.utf8)
        return bytes.withUnsafeMutableBufferPointer { buffer in
            yaml_parser_set_input_string(&parser, buffer.baseAddress, buffer.count)
            var depth = 0
            while true {
                var event = yaml_event_t()
                guard yaml_parser_parse(&parser, &event) == 1 else { return false }
                let type = event.type
                yaml_event_delete(&event)
                switch type {
                case YAML_SEQUENCE_START_EVENT, YAML_MAPPING_START_EVENT:
                    depth += 1
                    if depth > limit { return true }
                case YAML_SEQUENCE_END_EVENT, YAML_MAPPING_END_EVENT:
                    depth -= 1
                case YAML_STREAM_END_EVENT:
                    return false
                default:
                    break
                }
            }
        }
    }
}
