// See set_option.hpp.
#include "set_option.hpp"

namespace ivmc::cli {

void add_set_option(CLI::App& cmd, std::vector<std::string>& sets, std::string& scenario,
                    bool scenario_required) {
  cmd.add_option("--set", sets,
                 "KEY=VALUE [KEY=VALUE ...]: change the scenario (scenarios/FORMAT.md), in order; "
                 "several pairs after one --set, or --set repeated")
      ->type_name("KEY=VALUE")
      ->allow_extra_args(true);
  CLI::App* app = &cmd;
  cmd.callback([app, &sets, &scenario, scenario_required] {
    CLI::Option* positional = app->get_option("scenario");
    const bool given = positional->count() > 0;
    if (!given && !sets.empty() && sets.back().find('=') == std::string::npos) {
      scenario = sets.back();
      sets.pop_back();
    } else if (!given && scenario_required) {
      throw CLI::RequiredError("scenario");
    }
  });
}

} // namespace ivmc::cli
