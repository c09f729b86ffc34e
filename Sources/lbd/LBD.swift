import ArgumentParser
import LBCore
import Logging

#if canImport(Glibc)
import Glibc
#endif

struct LBD: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lbd",
        abstract: "A load balancer for services registered in Consul.",
        subcommands: [Run.self, Check.self, Ctl.self, Version.self])
}

/// Options shared by the commands that read a config file.
struct ConfigOption: ParsableArguments {
    @Option(name: .shortAndLong, help: "Path to the YAML configuration.")
    var config: String = "conf/lbd.yaml"

    func load() throws(ConfigError) -> LBConfig {
        try ConfigLoader.load(path: config, defaultWorkers: Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
    }
}

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the load balancer in the foreground.")
    @OptionGroup var options: ConfigOption

    func run() throws {
        let config: LBConfig
        do {
            config = try options.load()
        } catch {
            printErr("lbd: \(options.config): configuration refused:\n\(error)")
            throw ExitCode(2)
        }
        let level = config.log.level.swiftLog
        let logger = Logger(label: "lbd") { LogfmtHandler(label: $0, fd: 2, level: level) }
        let access = config.log.accessLog
            ? Logger(label: "access") { LogfmtHandler(label: $0, fd: 1, level: .info) } : nil
        logger.info("starting", metadata: ["version": "\(lbdVersion)", "config": "\(options.config)"])
        let server: Server
        do {
            server = try Server(config: config, configPath: options.config, logger: logger, accessLogger: access)
        } catch {
            logger.critical("startup failed", metadata: ["error": "\(error)"])
            throw ExitCode(1)
        }
        let code = server.run()
        if code != 0 { throw ExitCode(code) }
    }
}

struct Check: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Validate a configuration; print every problem with its path. Exit 0 when valid.")
    @OptionGroup var options: ConfigOption

    func run() throws {
        do {
            let config = try options.load()
            print("\(options.config): ok (\(config.pools.count) pools, \(config.listeners.count) listeners)")
        } catch {
            printErr("\(options.config): \(error.problems.count) problem(s)")
            for p in error.problems { printErr(p.description) }
            throw ExitCode(1)
        }
    }
}

struct Version: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print the version.")
    func run() { print("lbd \(lbdVersion)") }
}

extension LogConfig.Level {
    var swiftLog: Logger.Level {
        switch self {
        case .trace: .trace
        case .debug: .debug
        case .info: .info
        case .notice: .notice
        case .warning: .warning
        case .error: .error
        case .critical: .critical
        }
    }
}

func printErr(_ s: String) {
    let bytes = Array((s + "\n").utf8)
    _ = bytes.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
}
