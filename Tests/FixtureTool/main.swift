import Foundation
import TestSupport

// Test fixtures only (not part of the product): regenerates a fixture checkpoint's
// audio_detokenizer/model.safetensors from its weights_recipe.json, bit-exactly (sha256-checked).
let args = CommandLine.arguments.dropFirst()
guard args.count == 1, let folder = args.first else {
    FileHandle.standardError.write(Data("usage: fixture-weights CHECKPOINT_FOLDER\n".utf8))
    exit(2)
}
do {
    print("wrote \(try DetokenizerRecipe.materialize(checkpoint: folder))")
} catch {
    FileHandle.standardError.write(Data("fixture-weights: \(error)\n".utf8))
    exit(1)
}
