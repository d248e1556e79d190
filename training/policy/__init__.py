"""Policy training (the sft and dpo kinds' children): examples from the job folder's files, the model loaded for
its method and precision, the trainer's shared arguments, the saved folder and the held-out evaluation.
Django-free, like every child-side package."""
