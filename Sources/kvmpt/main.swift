import KVMPageTable
import Foundation
let path = CommandLine.arguments[2]
let text = try! String(contentsOfFile: path, encoding: .utf8)
let script = try! ScriptParser.parse(text, fileName: path)
let runner = try! ScriptRunner(script: script)
runner.run { FileHandle.standardOutput.write($0.data(using: .utf8)!) }
