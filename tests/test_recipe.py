"""One student recipe: every method's student-domain training loops are built by `recipe_learner`, so that
changing the recipe changes all of them alike, AuG-KD's stage 3 included."""
import augkd.recipe as recipe
import augkd.baselines  # noqa: F401  the roster registers itself
from augkd.cells import Cell, cell_parts, score
from augkd.methods import METHODS
from augkd.stages import make_config
from augkd.train import Learner
from augkd.recipe import StudentRecipe

DATA_FREE_ONLY = {"teacher", "dafl", "zskt", "dfq", "deepinv", "cmi", "pre_dfkd"}  # they train nothing on the student domain
OWN_RECIPE = {"augkd_code"}  # the reference code's stage-3 recipe by design (`mixup_recipe="reference"`; tested in the mixup notebook)


def test_changing_the_recipe_changes_every_methods_student_training_alike(monkeypatch, tmp_path):
    config = make_config("quick")
    cell_parts(Cell(config, tmp_path / "teacher"))  # the cached teacher is trained before the recipe changes
    loops, fit = [], Learner.fit

    def recorded_fit(learn):
        history = fit(learn)
        loops.append((learn.name, [row.get("lr") for row in history], any(type(cb).__name__ == "BestState" for cb in learn.callbacks)))
        return history

    monkeypatch.setattr(Learner, "fit", recorded_fit)
    monkeypatch.setattr(recipe, "STUDENT_RECIPE", StudentRecipe(schedule="constant", select_best=False, recalibrate_bn=False))
    for method in (m for m in METHODS if m not in OWN_RECIPE):
        loops.clear()
        score(method, Cell(config, tmp_path / method))
        by_recipe = [(name, lrs, best) for name, lrs, best in loops if lrs and lrs[0] is not None]
        if method in DATA_FREE_ONLY:
            assert by_recipe == [], method
            continue
        assert by_recipe, f"{method} trained no student by the recipe"
        for name, lrs, best in by_recipe:
            assert lrs == [config.lr_s] * config.mixup_epochs and not best, (method, name, lrs)
