// lathe train: LoRA / QLoRA / prefix tuning / full fine-tuning (options: train/train_options.h).
#include "lathe/cli/command.h"
#include "lathe/train/trainer.h"

namespace {

std::function<int()> setup(CLI::App& app) {
  auto o = std::make_shared<lathe::TrainOptions>();
  lathe::declare_train_options(app, *o);
  return [o, &app] {
    lathe::finalize_train_options(app, *o);
    return lathe::run_training(*o);
  };
}
LATHE_COMMAND("train", "Fine-tune a model: LoRA, QLoRA, prefix tuning or full", setup);

}  // namespace
