#include "lathe/core/error.h"
#include "lathe/model/model.h"

namespace lathe {

void quantize_model_nf4(Model& m) { fail("qlora", "{}: NF4 quantization is not built yet", m.source); }

}  // namespace lathe
