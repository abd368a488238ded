"""train_config_dump.py - the run folder's configs/<now>-project.yaml and -lightning.yaml as the
peer's main.py writes them (ti-peer.md §1.2, §1.4): the --base files merged with OmegaConf, the
CLI dot-list merged last, the lightning section popped and its trainer completed (accelerator
"ddp" when gpus is given, the non-default PL flags), embedding_manager_ckpt, placeholder and
init word set, the data roots set, then OmegaConf.to_yaml. One deliberate ti difference is
applied here too: --placeholder_string also sets data.params.{train,validation}.params
.placeholder_token (the fix of pitfall 1.7-b), before data_root as ti does.

Needs OmegaConf 2.1.1 (the peer's version; not in the oracle venv):
  python3 -m venv --system-site-packages V && V/bin/pip install omegaconf==2.1.1
  V/bin/python scripts/oracle/train_config_dump.py     (from the repository root)
Writes tests/fixtures/train/config_dump/<case>-{project,lightning}.yaml; test_train_cli runs
the same command lines through ti and compares the bytes.
"""
import os
from omegaconf import OmegaConf

OUT = "tests/fixtures/train/config_dump"

# name: (bases, dotlist, pl flags (non-default), gpus, placeholder, init_word, data_root)
CASES = {
    "sd": (["configs/stable-diffusion/v1-finetune.yaml"],
           ["model.params.personalization_config.params.num_vectors_per_token=3",
            "data.params.batch_size=1", "lightning.trainer.max_steps=3"],
           [("accumulate_grad_batches", 2)], None, "@", "toy", "/data/my cats \u00fc/"),
    "ldm_style": (["configs/latent-diffusion/txt2img-1p4B-finetune.yaml",
                   "configs/latent-diffusion/txt2img-1p4B-finetune_style.yaml"],
                  ["model.params.personalization_config.params.initializer_words=[painting,art]",
                   "model.base_learning_rate=1e-5", "lightning.trainer.max_steps=3",
                   "data.params.train.params.size=128",
                   "model.params.personalization_config.params.placeholder_strings=['*']"],
                  [], "0,", None, None, "photos"),
}


def main():
    os.makedirs(OUT, exist_ok=True)
    for name, (bases, dotlist, flags, gpus, ph, iw, root) in CASES.items():
        config = OmegaConf.merge(*[OmegaConf.load(b) for b in bases], OmegaConf.from_dotlist(dotlist))
        lightning = config.pop("lightning", OmegaConf.create())
        trainer = lightning.get("trainer", OmegaConf.create())
        trainer["accelerator"] = "ddp"
        if gpus is not None:
            trainer["gpus"] = gpus
        for k, v in flags:
            trainer[k] = v
        if "gpus" not in trainer:
            del trainer["accelerator"]
        lightning.trainer = trainer
        pc = config.model.params.personalization_config.params
        pc.embedding_manager_ckpt = ""
        if ph is not None:
            pc.placeholder_strings = [ph]
            for split in ("train", "validation"):
                config.data.params[split].params.placeholder_token = ph
        if iw is not None:
            pc.initializer_words[0] = iw
        for split in ("train", "validation"):
            config.data.params[split].params.data_root = root
        with open(f"{OUT}/{name}-project.yaml", "w", encoding="utf-8") as f:
            f.write(OmegaConf.to_yaml(config))
        with open(f"{OUT}/{name}-lightning.yaml", "w", encoding="utf-8") as f:
            f.write(OmegaConf.to_yaml(OmegaConf.create({"lightning": lightning})))


if __name__ == "__main__":
    main()
