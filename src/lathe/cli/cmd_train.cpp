// lathe train: LoRA / QLoRA / prefix tuning / full fine-tuning (options: train/train_options.h).
#include "lathe/cli/cli_options.h"
#include "lathe/cli/command.h"
#include "lathe/train/trainer.h"

namespace {

std::function<int()> setup(CLI::App& app) {
  auto flags = std::make_shared<lathe::cli::CliOptions>(app, lathe::train_options_table());
  return [flags] {
    // defaults < --config FILE < LATHE_* environment < flags (train/train_options.h)
    lathe::TrainOptions o = lathe::resolve_train_options(flags->overrides());
    return lathe::run_training(o);
  };
}
LATHE_COMMAND("train", "Fine-tune a model: LoRA, QLoRA, IA3, prompt tuning, P-tuning, prefix tuning or full", setup);

}  // namespace
