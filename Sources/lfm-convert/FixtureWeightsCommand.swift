import ArgumentParser
import Foundation
import Formats

/// Test fixtures only: writes `audio_detokenizer/model.safetensors` from its `weights_recipe.json`.
struct FixtureWeightsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fixture-weights",
        abstract:
            "Test fixtures: regenerate audio_detokenizer/model.safetensors from weights_recipe.json (bit-exact, sha256-checked)."
    )

    @Argument(help: "Checkpoint folder whose audio_detokenizer/ has a weights_recipe.json.")
    var checkpoint: String

    func run() throws {
        let out = try DetokenizerRecipe.materialize(checkpoint: checkpoint)
        print("wrote \(out)")
    }
}
