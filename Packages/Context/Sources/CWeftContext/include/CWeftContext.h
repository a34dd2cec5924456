#pragma once
/* Placeholder until the context layer lands: replaced by the switch routine's declarations. */
int weft_context_abi_version(void);
